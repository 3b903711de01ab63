//! For the project's own tests, benches and fuzz targets; not part of the SDK's interface.
#![doc(hidden)]

/// Whether this build has the `fail_point!` interleaving hooks compiled in (the cargo feature
/// `failpoints`, which only test builds turn on). The binary sets up `FAILPOINTS` only then.
pub const FAILPOINTS: bool = cfg!(feature = "failpoints");
