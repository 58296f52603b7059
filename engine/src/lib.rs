//! argon-engine: see ../shared/ARCHITECTURE.md; built in its own issue.
