//! The body type of every proxy response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::stream::reshape::ReshapedBody;
use crate::stream::tee::{BodyError, TeeBody};

pub enum ProxyBody {
    Full(Option<Bytes>),
    Tee(Box<TeeBody>),
    /// The tee's chat answer rewritten for another client API.
    Reshaped(Box<ReshapedBody>),
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Some(bytes.into()))
    }

    pub fn tee(body: TeeBody) -> Self {
        ProxyBody::Tee(Box::new(body))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Tee(tee) => Pin::new(tee.as_mut()).poll_frame(cx),
            ProxyBody::Reshaped(body) => Pin::new(body.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Tee(tee) => tee.is_end_stream(),
            ProxyBody::Reshaped(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Tee(tee) => tee.size_hint(),
            ProxyBody::Reshaped(body) => body.size_hint(),
        }
    }
}
