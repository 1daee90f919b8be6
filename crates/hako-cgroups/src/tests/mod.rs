//! Unit tests against fake cgroupfs trees.
