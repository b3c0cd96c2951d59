//! The interposition shim. Not built out yet: the Linux supervisor is the projection that
//! works today; this crate reserves the place of the in-process fast path.
