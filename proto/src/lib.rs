//! Generated protobuf code for the wire protocols nodeguard speaks.
