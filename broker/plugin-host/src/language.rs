//! Which source language a component was written in, when it says so.
//! `switchyard plugin build` stamps a `switchyard-language` custom section;
//! otherwise the producers sections that compilers and componentizers
//! write (in the component or its core modules) tell.

use wasmparser::{KnownCustom, Parser, Payload};

/// The custom section `switchyard plugin build` adds to a component.
pub const LANGUAGE_SECTION: &str = "switchyard-language";

/// The language of a component, or `None` when nothing in it says.
pub fn detect_language(component: &[u8]) -> Option<String> {
    let mut from_producers = None;
    for payload in Parser::new(0).parse_all(component) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() == LANGUAGE_SECTION
            && let Ok(language) = std::str::from_utf8(section.data())
        {
            return Some(language.to_string());
        }
        if from_producers.is_some() {
            continue;
        }
        let KnownCustom::Producers(producers) = section.as_known() else {
            continue;
        };
        for field in producers.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                let guess = match (field.name, value.name) {
                    ("language", "Rust") | ("processed-by", "rustc") => Some("rust"),
                    ("processed-by", "clang") => Some("c"),
                    ("language", name) if name.starts_with("C") && !name.starts_with("C++") => {
                        Some("c")
                    }
                    ("language", "C++") => Some("c++"),
                    ("processed-by", "componentize-py") => Some("python"),
                    ("processed-by", name)
                        if name.to_ascii_lowercase().contains("componentize-js") =>
                    {
                        Some("javascript")
                    }
                    ("processed-by", "AssemblyScript") => Some("assemblyscript"),
                    _ => None,
                };
                if guess.is_some() {
                    from_producers = guess.map(str::to_string);
                }
            }
        }
    }
    from_producers
}
