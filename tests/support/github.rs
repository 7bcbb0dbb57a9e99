//! The GitHub stand-in lives in the library (`nightshift::sandbox::github`), for `nightshift drill`.
#[allow(unused_imports)] // not every test binary opens pull requests
pub use nightshift::sandbox::github::*;
