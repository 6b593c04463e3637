pub mod bench;
pub mod info;
pub mod inspect;
pub mod run;
pub mod validate;
