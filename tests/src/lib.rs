//! Shared bodies of the integration suite.
