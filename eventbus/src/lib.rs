//! The Argon event bus (issue: event bus).
