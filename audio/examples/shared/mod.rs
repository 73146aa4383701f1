//! Code shared by the offline quality examples.

pub(crate) mod lossy_decode;
