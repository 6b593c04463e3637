pub mod bench;
mod bench_flows;
mod bench_rows;
pub mod embed;
pub mod info;
pub mod inspect;
pub mod prepare;
pub mod run;
pub mod validate;
