//! Examples of the Switchyard client SDK: see the `[[example]]` targets.
