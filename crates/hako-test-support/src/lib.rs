//! Test support for hako: fixtures, runtime drivers, leak checks.
