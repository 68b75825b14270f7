//! The byte stream to the upstream: plain TCP, or TLS over TCP.
//!
//! Both implement monoio's owned-buffer IO traits, so the relay code reads and writes an
//! [`UpstreamStream`] without knowing which it is. The dispatch is one `match` per operation;
//! the TLS state is boxed so that a plain connection stays as small as a bare `TcpStream`.

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use super::tls::TlsStream;

/// A connection to the upstream.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl UpstreamStream {
    pub fn tls(stream: TlsStream) -> UpstreamStream {
        UpstreamStream::Tls(Box::new(stream))
    }
}

impl AsyncReadRent for UpstreamStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(stream) => stream.read(buf).await,
            UpstreamStream::Tls(stream) => stream.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(stream) => stream.readv(buf).await,
            UpstreamStream::Tls(stream) => stream.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpstreamStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(stream) => stream.write(buf).await,
            UpstreamStream::Tls(stream) => stream.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamStream::Plain(stream) => stream.writev(buf).await,
            UpstreamStream::Tls(stream) => stream.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpstreamStream::Plain(stream) => stream.flush().await,
            UpstreamStream::Tls(stream) => stream.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpstreamStream::Plain(stream) => stream.shutdown().await,
            UpstreamStream::Tls(stream) => stream.shutdown().await,
        }
    }
}
