//! cgroup managers (placeholder; being written).
