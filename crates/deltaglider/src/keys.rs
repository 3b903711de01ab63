//! How a logical key maps onto the on-bucket format: every key belongs to the deltaspace
//! of its directory, whose one reference (`reference.bin`) its delta is made against.
//!
//! ```
//! use deltaglider::keys;
//!
//! assert_eq!(keys::deltaspace("app/v1/app.zip"), "app/v1");
//! assert_eq!(keys::file_name("app/v1/app.zip"), "app.zip");
//! assert_eq!(keys::reference_key("app/v1/app.zip"), "app/v1/reference.bin");
//! assert!(keys::is_reference("app/v1/reference.bin"));
//! assert!(keys::reserved_reason("app/v1/app.zip.delta").is_some());
//! ```

use crate::deltaspace;

/// The name of every deltaspace's reference object.
pub const REFERENCE_NAME: &str = deltaspace::REFERENCE_NAME;

/// The deltaspace of a key: everything before its last `/` (empty at the bucket root).
pub fn deltaspace(key: &str) -> &str {
    deltaspace::of_key(key)
}

/// The last path segment of a key.
pub fn file_name(key: &str) -> &str {
    deltaspace::file_name(key)
}

/// The key of the reference of the deltaspace `key` belongs to.
pub fn reference_key(key: &str) -> String {
    deltaspace::reference_key_for(key)
}

/// Whether `key` names a deltaspace's reference, which is written and removed with the
/// deltas that need it, never on its own.
pub fn is_reference(key: &str) -> bool {
    file_name(key) == REFERENCE_NAME
}

/// Why `key` cannot be stored, if it cannot: it would collide with DeltaGlider's own objects
/// (references, deltas, `.deltaglider/`), or it names a directory.
pub fn reserved_reason(key: &str) -> Option<String> {
    deltaspace::reserved_key_reason(key)
}
