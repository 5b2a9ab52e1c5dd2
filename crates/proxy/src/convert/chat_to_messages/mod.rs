//! A chat-completions client served by an Anthropic Messages provider.
