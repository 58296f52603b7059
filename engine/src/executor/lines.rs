//! Splits a step's output into lines for the log sink, whatever the chunks
//! it arrives in (pipe reads, the runtime's log frames), keeping stdout up
//! to [`RESULT_LIMIT`] as the step's result and the last stderr line.

use super::{LogSink, RESULT_LIMIT};

/// The lines of one stream of one step.
pub(crate) struct Lines {
    stream: &'static str,
    sink: LogSink,
    capture: bool,
    captured: String,
    last: String,
    partial: Vec<u8>,
    batch: Vec<String>,
}

impl Lines {
    /// Lines of `stream` to `sink`; `capture` keeps the text as the result.
    pub(crate) fn new(stream: &'static str, sink: LogSink, capture: bool) -> Lines {
        Lines {
            stream,
            sink,
            capture,
            captured: String::new(),
            last: String::new(),
            partial: Vec::new(),
            batch: Vec::new(),
        }
    }

    /// Takes a chunk and sends the whole lines it completes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..=i]);
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        self.flush();
    }

    fn line(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        if self.capture && self.captured.len() < RESULT_LIMIT {
            let room = RESULT_LIMIT - self.captured.len();
            let mut cut = text.len().min(room);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.captured.push_str(&text[..cut]);
        }
        let line = text.trim_end_matches(['\n', '\r']).to_string();
        if !line.is_empty() {
            self.last = line.clone();
        }
        self.batch.push(line);
        if self.batch.len() >= 256 {
            self.flush();
        }
    }

    /// Sends the lines gathered so far (a fast writer gets them batched).
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            (self.sink)(self.stream, std::mem::take(&mut self.batch));
        }
    }

    /// Ends the stream: a last line without a newline counts too. Returns
    /// (captured text without its final newline, last non-empty line).
    pub(crate) fn finish(mut self) -> (String, String) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
        self.flush();
        let mut captured = self.captured;
        if captured.ends_with('\n') {
            captured.pop();
            if captured.ends_with('\r') {
                captured.pop();
            }
        }
        (captured, self.last)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn lines_split_across_chunks_are_joined_and_the_result_is_capped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink: LogSink = Arc::new(move |_: &str, lines: Vec<String>| s.lock().unwrap().extend(lines));
        let mut l = Lines::new("stdout", sink, true);
        l.feed(b"hel");
        l.feed(b"lo\nwor");
        l.feed(b"ld\r\n\nlast");
        let (result, last) = l.finish();
        assert_eq!(*seen.lock().unwrap(), ["hello", "world", "", "last"]);
        assert_eq!(result, "hello\nworld\r\n\nlast");
        assert_eq!(last, "last");

        let sink: LogSink = Arc::new(|_: &str, _: Vec<String>| {});
        let mut l = Lines::new("stdout", sink, true);
        l.feed(&vec![b'x'; RESULT_LIMIT + 10]);
        l.feed(b"\n");
        assert_eq!(l.finish().0.len(), RESULT_LIMIT);
    }
}
