//! seccomp (placeholder; being written).
