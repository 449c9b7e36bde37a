//! Tests of the usage module (extractors, meter, strip, prices).
