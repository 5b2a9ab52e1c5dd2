//! An Anthropic Messages client served by a chat-completions provider.
