//! Unit tests of the view: one test per behaviour, named after it.

mod attrs;
mod fast_paths;
mod fixture;
mod layers;
mod names;
mod open;
mod owners;
mod rename;
mod resolve;
mod tables;
mod timing;
mod xattrs;
