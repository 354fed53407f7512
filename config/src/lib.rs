//! (being written)

pub mod policy;
