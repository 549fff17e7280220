//! `topic`: binding keys are dot-separated patterns where `*` matches exactly
//! one word and `#` matches zero or more words (AMQP topic semantics).
//!
//! Bindings are compiled into a trie of words so routing cost grows with the
//! routing key's length, not with the number of bindings.
#![no_std]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use switchyard_plugin::{
    Binding, Body, Exchange, Field, Message, PluginInfo, PluginKind, Router, export_exchange,
    plugin_info,
};

pub struct Topic;

#[derive(Default)]
struct Node {
    words: BTreeMap<String, Node>,
    star: Option<alloc::boxed::Box<Node>>,
    hash: Option<alloc::boxed::Box<Node>>,
    /// Bindings whose pattern ends at this node.
    bindings: Vec<u32>,
}

pub struct TopicRouter {
    root: Node,
    binding_count: usize,
}

impl Exchange for Topic {
    type Router = TopicRouter;

    fn describe() -> PluginInfo {
        plugin_info(
            "topic",
            env!("CARGO_PKG_VERSION"),
            PluginKind::Exchange,
            true,
            "dot-separated patterns: * matches one word, # zero or more",
        )
    }

    fn validate_binding(binding: &Binding, _exchange_arguments: &[Field]) -> Result<(), String> {
        if binding.key.len() > 255 {
            return Err(alloc::format!(
                "topic binding key is {} bytes; the limit is 255",
                binding.key.len()
            ));
        }
        Ok(())
    }
}

impl Router for TopicRouter {
    fn new(bindings: Vec<Binding>, _exchange_arguments: Vec<Field>) -> Self {
        let mut root = Node::default();
        let binding_count = bindings.len();
        for (binding, index) in bindings.iter().zip(0u32..) {
            let mut node = &mut root;
            for word in binding.key.split('.') {
                node = match word {
                    "*" => node.star.get_or_insert_with(Default::default),
                    "#" => node.hash.get_or_insert_with(Default::default),
                    _ => node.words.entry(word.into()).or_default(),
                };
            }
            node.bindings.push(index);
        }
        TopicRouter {
            root,
            binding_count,
        }
    }

    fn route(&self, message: &Message, _body: &Body<'_>) -> Result<Vec<u32>, String> {
        let words: Vec<&str> = message.routing_key.split('.').collect();
        let mut matched = alloc::vec![false; self.binding_count];
        collect(&self.root, &words, &mut matched);
        Ok(matched
            .iter()
            .zip(0u32..)
            .filter_map(|(hit, index)| hit.then_some(index))
            .collect())
    }
}

/// Marks every binding whose pattern matches `words` from `node` on.
fn collect(node: &Node, words: &[&str], matched: &mut [bool]) {
    if let Some(hash) = &node.hash {
        // `#` swallows zero or more words: try every split point.
        for skip in 0..=words.len() {
            collect(hash, &words[skip..], matched);
        }
    }
    match words.split_first() {
        None => {
            for &index in &node.bindings {
                matched[index as usize] = true;
            }
        }
        Some((first, rest)) => {
            if let Some(child) = node.words.get(*first) {
                collect(child, rest, matched);
            }
            if let Some(star) = &node.star {
                collect(star, rest, matched);
            }
        }
    }
}

export_exchange!(Topic);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin::Properties;

    fn route(patterns: &[&str], key: &str) -> Vec<u32> {
        let bindings = patterns
            .iter()
            .map(|p| Binding {
                destination: "q".into(),
                key: (*p).into(),
                arguments: Vec::new(),
            })
            .collect();
        let router = TopicRouter::new(bindings, Vec::new());
        let message = Message {
            routing_key: key.into(),
            headers: Vec::new(),
            properties: Properties::default(),
            body_size: 0,
        };
        router.route(&message, &Body::from_bytes(&[])).unwrap()
    }

    #[test]
    fn star_matches_exactly_one_word() {
        assert_eq!(route(&["a.*"], "a.b"), [0]);
        assert!(route(&["a.*"], "a").is_empty());
        assert!(route(&["a.b.*"], "a.b").is_empty());
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert_eq!(route(&["a.#"], "a"), [0]);
        assert_eq!(route(&["a.#.z"], "a.b.c.z"), [0]);
        assert_eq!(route(&["#"], ""), [0]);
        assert_eq!(route(&["#.#"], "x.y"), [0]);
    }
}
