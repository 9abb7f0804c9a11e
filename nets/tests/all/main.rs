//! `nets`'s integration tests, one binary: each file below is one of
//! its modules, so a cold build compiles and links this crate's tests once, not once per file.

mod io;
mod io_fuzz;
mod layers;
