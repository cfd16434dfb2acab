//! Only the tests in `tests/` matter here.
