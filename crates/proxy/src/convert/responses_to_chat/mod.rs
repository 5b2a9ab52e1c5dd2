//! An OpenAI Responses client served by a chat-completions provider.
