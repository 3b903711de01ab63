//! The command line: parse, call the library, print.

pub mod args;
pub mod exit;
pub mod output;
pub mod run;
pub mod upload_options;
