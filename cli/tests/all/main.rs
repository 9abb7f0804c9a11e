//! The `l3d` program's integration tests, one binary: each file below is one module of it, so a cold
//! build compiles and links this crate's tests once instead of once per file.

mod end_to_end;
mod figures;
mod program;
