//! A minimal protocol-buffers writer, enough for ONNX's messages (onnx.proto, proto2).

/// One message being written.
#[derive(Default, Clone)]
pub struct Msg(pub Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Msg {
    pub fn new() -> Self {
        Msg(Vec::new())
    }
    fn key(&mut self, field: u32, wire: u8) {
        varint(&mut self.0, ((field as u64) << 3) | wire as u64);
    }
    /// A varint field (int32, int64, enum); negative values as 10-byte two's complement.
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        varint(&mut self.0, v as u64);
        self
    }
    /// A 32-bit float field.
    pub fn f32(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A length-delimited field.
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }
    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }
    /// Repeated int64, one element per field occurrence (unpacked: proto2's default).
    pub fn ints(&mut self, field: u32, vs: &[i64]) -> &mut Self {
        for &v in vs {
            self.int(field, v);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_protobuf() {
        let mut m = Msg::new();
        m.int(1, 150);
        assert_eq!(m.0, vec![0x08, 0x96, 0x01]);
        let mut m = Msg::new();
        m.str(2, "testing");
        assert_eq!(m.0, b"\x12\x07testing".to_vec());
        let mut m = Msg::new();
        m.int(3, -1);
        assert_eq!(m.0.len(), 11);
    }
}
