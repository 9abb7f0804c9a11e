//! The `l3d` program's integration tests, one binary: each file below is one of
//! its modules, so a cold build compiles and links this crate's tests once, not once per file.

mod digits;
mod end_to_end;
mod figures;
mod induction;
mod program;
mod real_models;
mod runs;
