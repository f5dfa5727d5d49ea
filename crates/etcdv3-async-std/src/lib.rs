//! async-std runtime (in progress).
