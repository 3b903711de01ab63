//! The command line: parse, call the library, print.

pub mod advice;
pub mod analyze;
pub mod args;
pub mod exit;
pub mod output;
pub mod progress;
pub mod report;
pub mod run;
pub mod upload_options;
