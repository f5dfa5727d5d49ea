//! Issue 12, items 6 and 7 against a real cluster.
