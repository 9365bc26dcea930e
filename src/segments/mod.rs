//! Customer segments: RFM scores and the named segments they fall into (`rfm`), computed per
//! program from its ledger in bounded steps (`compute`), on a schedule and on demand
//! (`runner`). The results live in the store (`store::segments`), where the console, the
//! customer list and message audiences read them.

pub mod compute;
pub mod rfm;
pub mod runner;
