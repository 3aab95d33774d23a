//! The `tributary` binary end to end, in one test binary: five linked apart cost a link of alloy,
//! burn and the HTTP stack each on CI's two cores.

mod attribute;
mod common;
mod datanet;
mod receipt;
mod run;
mod serve;
