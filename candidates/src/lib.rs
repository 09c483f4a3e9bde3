//! `mmreplay-candidates`: policy variants that replay side by side with the reference, each with
//! its contract. It must never change model code outside the decision points.
