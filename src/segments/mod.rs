//! Customer segments: RFM scores and the named segments they fall into (`rfm`). Computing them
//! for a program from its ledger, keeping them and using them as audiences builds on this.

pub mod rfm;
