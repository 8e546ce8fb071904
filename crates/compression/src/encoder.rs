//! The streaming encoders, over the codec crates' synchronous `Write` adapters.
//!
//! Each writes into a `BytesMut`; after every input chunk the encoder is flushed (zlib's
//! `Z_SYNC_FLUSH`, brotli's `BROTLI_OPERATION_FLUSH`, zstd's `ZSTD_e_flush`) and what it wrote
//! is split off as one output frame, so the client can decode each chunk the upstream sent as
//! soon as it arrives. Splitting keeps the buffer's spare capacity for the next chunk.

use std::io::{self, Write};

use bytes::buf::{BufMut, Writer};
use bytes::{Bytes, BytesMut};

use crate::negotiate::Algorithm;

/// brotli quality: 4 is fast enough to run on every response of a proxy.
const BROTLI_QUALITY: u32 = 4;
/// brotli window, log2: 512 KiB (as ngx_brotli), bounding the memory of each stream.
const BROTLI_LGWIN: u32 = 19;
/// The size of brotli's internal output buffer.
const BROTLI_BUFFER: usize = 4096;

type Sink = Writer<BytesMut>;

/// One response's encoder.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Sink>),
    // Boxed: its state is some 5 KiB, the others' well under 1 KiB.
    Brotli(Box<brotli::CompressorWriter<Sink>>),
    Zstd(zstd::stream::write::Encoder<'static, Sink>),
}

impl Encoder {
    /// A fresh encoder for `algorithm`; zstd's context allocation can fail.
    pub(crate) fn new(algorithm: Algorithm) -> io::Result<Self> {
        let sink = BytesMut::new().writer();
        Ok(match algorithm {
            Algorithm::Gzip => Self::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::default(),
            )),
            Algorithm::Brotli => Self::Brotli(Box::new(brotli::CompressorWriter::new(
                sink,
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_LGWIN,
            ))),
            Algorithm::Zstd => Self::Zstd(zstd::stream::write::Encoder::new(
                sink,
                zstd::DEFAULT_COMPRESSION_LEVEL,
            )?),
        })
    }

    /// The algorithm this encoder produces.
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Gzip(_) => Algorithm::Gzip,
            Self::Brotli(_) => Algorithm::Brotli,
            Self::Zstd(_) => Algorithm::Zstd,
        }
    }

    /// Compresses `data` and flushes: everything needed to decode `data` is in the result.
    pub(crate) fn encode(&mut self, data: &[u8]) -> io::Result<Bytes> {
        let sink = match self {
            Self::Gzip(encoder) => flushed(encoder, data)?,
            Self::Brotli(encoder) => flushed(&mut **encoder, data)?,
            Self::Zstd(encoder) => flushed(encoder, data)?,
        };
        Ok(sink.split().freeze())
    }

    /// Ends the stream, returning its last bytes (the gzip trailer, the last brotli
    /// meta-block, the zstd epilogue).
    pub(crate) fn finish(self) -> io::Result<Bytes> {
        let sink = match self {
            Self::Gzip(encoder) => encoder.finish()?,
            // `into_inner` finishes the stream; writing into memory cannot fail.
            Self::Brotli(encoder) => encoder.into_inner(),
            Self::Zstd(encoder) => encoder.finish()?,
        };
        Ok(sink.into_inner().freeze())
    }
}

fn flushed<'a, E: Write + Inner>(encoder: &'a mut E, data: &[u8]) -> io::Result<&'a mut BytesMut> {
    encoder.write_all(data)?;
    encoder.flush()?;
    Ok(encoder.sink().get_mut())
}

/// The output buffer of an encoder.
trait Inner {
    fn sink(&mut self) -> &mut Sink;
}

impl Inner for flate2::write::GzEncoder<Sink> {
    fn sink(&mut self) -> &mut Sink {
        self.get_mut()
    }
}

impl Inner for brotli::CompressorWriter<Sink> {
    fn sink(&mut self) -> &mut Sink {
        self.get_mut()
    }
}

impl Inner for zstd::stream::write::Encoder<'static, Sink> {
    fn sink(&mut self) -> &mut Sink {
        self.get_mut()
    }
}
