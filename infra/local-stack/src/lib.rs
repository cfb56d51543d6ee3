//! local-stack
