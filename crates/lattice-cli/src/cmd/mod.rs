pub mod bench;
mod bench_flows;
pub mod info;
pub mod inspect;
pub mod run;
pub mod validate;
