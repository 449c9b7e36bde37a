//! Tests of the usage module: every format whole and streamed (fed at every split offset and
//! as decoded events), the strip, and the prices.

mod extract;
mod fixtures;
mod meter;
mod price;
mod streams;
mod strip;
