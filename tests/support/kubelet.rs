//! The simulated kubelet lives in the library (`nightshift::sandbox::kubelet`), for `nightshift drill`.
#[allow(unused_imports)] // not every test binary drives pods
pub use nightshift::sandbox::kubelet::*;
