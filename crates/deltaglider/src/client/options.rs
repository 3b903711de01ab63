//! Setters for the options the client's operations take, so that callers build them from
//! `Default` and new fields can be added without breaking them.

use crate::engine::PutRequestOptions;
use crate::storage::ObjectSettings;
use crate::transfer::TransferOptions;
use crate::transfer::filter::Filters;
use crate::transfer::plan::CompareOptions;

impl PutRequestOptions {
    /// Stores the file whole even if its extension is delta-eligible.
    pub fn no_delta(mut self, no_delta: bool) -> Self {
        self.no_delta = no_delta;
        self
    }

    /// `Content-Type` of the object written.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds one entry of caller metadata (kept as `user-<key>`).
    pub fn user_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_metadata.insert(key.into(), value.into());
        self
    }

    /// Headers, storage class, encryption and ACL of the objects written.
    pub fn object(mut self, object: ObjectSettings) -> Self {
        self.object = object;
        self
    }
}

impl TransferOptions {
    /// What is copied and deleted.
    pub fn compare(mut self, compare: CompareOptions) -> Self {
        self.compare = compare;
        self
    }

    /// Which relative paths take part.
    pub fn filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }

    /// Reports what would happen and changes nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Files in flight at once.
    pub fn concurrency(mut self, files: usize) -> Self {
        self.concurrency = files;
        self
    }

    /// Applied to every file uploaded or copied.
    pub fn put(mut self, put: PutRequestOptions) -> Self {
        self.put = put;
        self
    }

    /// Whether local trees follow symbolic links.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }
}

impl CompareOptions {
    /// Compares sizes only.
    pub fn size_only(mut self, size_only: bool) -> Self {
        self.size_only = size_only;
        self
    }

    /// Downloads: copies same-sized files unless their times match exactly.
    pub fn exact_timestamps(mut self, exact: bool) -> Self {
        self.exact_timestamps = exact;
        self
    }

    /// Deletes destination files that are not in the source.
    pub fn delete(mut self, delete: bool) -> Self {
        self.delete = delete;
        self
    }

    /// Copies everything, comparing nothing (`cp -r`).
    pub fn always_copy(mut self, always: bool) -> Self {
        self.always_copy = always;
        self
    }
}
