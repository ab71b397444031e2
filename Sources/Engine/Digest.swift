/// MD5 and SHA-256 in plain Swift: Foundation on Linux has no CryptoKit, and the NAS-Bench-101
/// fingerprint is defined in terms of MD5, so it must be reproduced bit for bit.
public enum Digest {
    public static func md5(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { md5Value(of: $0).bytes }
    }

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Lowercase, as Python's `hexdigest()`.
    public static func hex(_ bytes: [UInt8]) -> String {
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// MD5 of `message` without heap allocation; the fingerprint code calls this tens of
    /// millions of times on short strings.
    static func md5Value(of message: UnsafeRawBufferPointer) -> MD5Value {
        var state = MD5State()
        let fullBlocks = message.count / 64
        if let base = message.baseAddress {
            for block in 0..<fullBlocks { state.compress(base + block * 64) }
        }
        let tailCount = message.count - fullBlocks * 64
        withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { padded in
            let pad = padded.baseAddress!
            pad.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
            if tailCount > 0 {
                pad.copyMemory(from: message.baseAddress! + fullBlocks * 64, byteCount: tailCount)
            }
            pad.storeBytes(of: 0x80, toByteOffset: tailCount, as: UInt8.self)
            let paddedCount = tailCount < 56 ? 64 : 128
            let bitCount = UInt64(message.count) &* 8
            pad.storeBytes(of: bitCount.littleEndian, toByteOffset: paddedCount - 8, as: UInt64.self)
            state.compress(UnsafeRawPointer(pad))
            if paddedCount == 128 { state.compress(UnsafeRawPointer(pad + 64)) }
        }
        return state.value
    }
}

/// A 16-byte MD5 digest held as two big-endian words, so that comparing values orders them
/// exactly as Python orders their lowercase hex strings.
struct MD5Value: Hashable, Comparable, Sendable {
    var high: UInt64
    var low: UInt64

    static func < (a: MD5Value, b: MD5Value) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses 32 lowercase hex characters; nil on anything else (uppercase would not
    /// round-trip to the same text).
    init?(hex text: UnsafeRawBufferPointer) {
        guard text.count == 32 else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        for i in 0..<32 {
            let c = text[i]
            let nibble: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
            default: return nil
            }
            if i < 16 { words.0 = words.0 << 4 | UInt64(nibble) } else { words.1 = words.1 << 4 | UInt64(nibble) }
        }
        self.init(high: words.0, low: words.1)
    }

    init?(hex text: String) {
        var text = text
        guard let value = text.withUTF8({ MD5Value(hex: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = value
    }

    var bytes: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> UInt64(56 - 8 * (i % 8))) }
    }

    /// Writes the 32 lowercase hex characters to `out` (which must have room for them).
    func writeHex(to out: UnsafeMutableRawPointer) {
        out.storeBytes(of: Self.hexDigits(of: UInt32(truncatingIfNeeded: high >> 32)), toByteOffset: 0, as: UInt64.self)
        out.storeBytes(of: Self.hexDigits(of: UInt32(truncatingIfNeeded: high)), toByteOffset: 8, as: UInt64.self)
        out.storeBytes(of: Self.hexDigits(of: UInt32(truncatingIfNeeded: low >> 32)), toByteOffset: 16, as: UInt64.self)
        out.storeBytes(of: Self.hexDigits(of: UInt32(truncatingIfNeeded: low)), toByteOffset: 24, as: UInt64.self)
    }

    /// The 8 hex characters of `word`, most significant first in memory, computed in one
    /// register: hex output was a sixth of the fingerprint's time as a table lookup per nibble.
    @inline(__always)
    private static func hexDigits(of word: UInt32) -> UInt64 {
        // One nibble per byte, the most significant nibble in the lowest byte.
        var x = UInt64(word.byteSwapped)
        x = (x | x << 16) & 0x0000_FFFF_0000_FFFF
        x = (x | x << 8) & 0x00FF_00FF_00FF_00FF
        x = (x >> 4) & 0x000F_000F_000F_000F | (x << 8) & 0x0F00_0F00_0F00_0F00
        // Bytes holding 10...15 get the extra distance from "9" + 1 to "a".
        let isLetter = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return (x &+ 0x3030_3030_3030_3030 &+ isLetter &* 39).littleEndian
    }

    var hex: String {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 1) { buffer in
            writeHex(to: buffer.baseAddress!)
            return String(decoding: UnsafeRawBufferPointer(buffer), as: UTF8.self)
        }
    }
}

/// RFC 1321, rounds written out: loops over shift/constant tables cost a large factor here.
private struct MD5State {
    var a: UInt32 = 0x6745_2301
    var b: UInt32 = 0xEFCD_AB89
    var c: UInt32 = 0x98BA_DCFE
    var d: UInt32 = 0x1032_5476

    var value: MD5Value {
        // The digest is a, b, c, d little-endian; big-endian words make MD5Value compare like hex.
        let high = UInt64(a.byteSwapped) << 32 | UInt64(b.byteSwapped)
        let low = UInt64(c.byteSwapped) << 32 | UInt64(d.byteSwapped)
        return MD5Value(high: high, low: low)
    }

    @inline(__always)
    private static func step(_ a: inout UInt32, _ b: UInt32, _ mixed: UInt32, _ x: UInt32, _ t: UInt32, _ s: UInt32) {
        let sum = a &+ mixed &+ x &+ t
        a = b &+ (sum &<< s | sum &>> (32 - s))
    }

    @inline(__always) private static func f(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 { z ^ (x & (y ^ z)) }
    @inline(__always) private static func g(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 { y ^ (z & (x ^ y)) }
    @inline(__always) private static func h(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 { x ^ y ^ z }
    @inline(__always) private static func i(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 { y ^ (x | ~z) }

    mutating func compress(_ block: UnsafeRawPointer) {
        @inline(__always) func word(_ k: Int) -> UInt32 {
            UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))
        }
        let x0 = word(0), x1 = word(1), x2 = word(2), x3 = word(3)
        let x4 = word(4), x5 = word(5), x6 = word(6), x7 = word(7)
        let x8 = word(8), x9 = word(9), x10 = word(10), x11 = word(11)
        let x12 = word(12), x13 = word(13), x14 = word(14), x15 = word(15)
        var a = self.a, b = self.b, c = self.c, d = self.d
        typealias S = MD5State

        S.step(&a, b, S.f(b, c, d), x0, 0xd76a_a478, 7); S.step(&d, a, S.f(a, b, c), x1, 0xe8c7_b756, 12)
        S.step(&c, d, S.f(d, a, b), x2, 0x2420_70db, 17); S.step(&b, c, S.f(c, d, a), x3, 0xc1bd_ceee, 22)
        S.step(&a, b, S.f(b, c, d), x4, 0xf57c_0faf, 7); S.step(&d, a, S.f(a, b, c), x5, 0x4787_c62a, 12)
        S.step(&c, d, S.f(d, a, b), x6, 0xa830_4613, 17); S.step(&b, c, S.f(c, d, a), x7, 0xfd46_9501, 22)
        S.step(&a, b, S.f(b, c, d), x8, 0x6980_98d8, 7); S.step(&d, a, S.f(a, b, c), x9, 0x8b44_f7af, 12)
        S.step(&c, d, S.f(d, a, b), x10, 0xffff_5bb1, 17); S.step(&b, c, S.f(c, d, a), x11, 0x895c_d7be, 22)
        S.step(&a, b, S.f(b, c, d), x12, 0x6b90_1122, 7); S.step(&d, a, S.f(a, b, c), x13, 0xfd98_7193, 12)
        S.step(&c, d, S.f(d, a, b), x14, 0xa679_438e, 17); S.step(&b, c, S.f(c, d, a), x15, 0x49b4_0821, 22)

        S.step(&a, b, S.g(b, c, d), x1, 0xf61e_2562, 5); S.step(&d, a, S.g(a, b, c), x6, 0xc040_b340, 9)
        S.step(&c, d, S.g(d, a, b), x11, 0x265e_5a51, 14); S.step(&b, c, S.g(c, d, a), x0, 0xe9b6_c7aa, 20)
        S.step(&a, b, S.g(b, c, d), x5, 0xd62f_105d, 5); S.step(&d, a, S.g(a, b, c), x10, 0x0244_1453, 9)
        S.step(&c, d, S.g(d, a, b), x15, 0xd8a1_e681, 14); S.step(&b, c, S.g(c, d, a), x4, 0xe7d3_fbc8, 20)
        S.step(&a, b, S.g(b, c, d), x9, 0x21e1_cde6, 5); S.step(&d, a, S.g(a, b, c), x14, 0xc337_07d6, 9)
        S.step(&c, d, S.g(d, a, b), x3, 0xf4d5_0d87, 14); S.step(&b, c, S.g(c, d, a), x8, 0x455a_14ed, 20)
        S.step(&a, b, S.g(b, c, d), x13, 0xa9e3_e905, 5); S.step(&d, a, S.g(a, b, c), x2, 0xfcef_a3f8, 9)
        S.step(&c, d, S.g(d, a, b), x7, 0x676f_02d9, 14); S.step(&b, c, S.g(c, d, a), x12, 0x8d2a_4c8a, 20)

        S.step(&a, b, S.h(b, c, d), x5, 0xfffa_3942, 4); S.step(&d, a, S.h(a, b, c), x8, 0x8771_f681, 11)
        S.step(&c, d, S.h(d, a, b), x11, 0x6d9d_6122, 16); S.step(&b, c, S.h(c, d, a), x14, 0xfde5_380c, 23)
        S.step(&a, b, S.h(b, c, d), x1, 0xa4be_ea44, 4); S.step(&d, a, S.h(a, b, c), x4, 0x4bde_cfa9, 11)
        S.step(&c, d, S.h(d, a, b), x7, 0xf6bb_4b60, 16); S.step(&b, c, S.h(c, d, a), x10, 0xbebf_bc70, 23)
        S.step(&a, b, S.h(b, c, d), x13, 0x289b_7ec6, 4); S.step(&d, a, S.h(a, b, c), x0, 0xeaa1_27fa, 11)
        S.step(&c, d, S.h(d, a, b), x3, 0xd4ef_3085, 16); S.step(&b, c, S.h(c, d, a), x6, 0x0488_1d05, 23)
        S.step(&a, b, S.h(b, c, d), x9, 0xd9d4_d039, 4); S.step(&d, a, S.h(a, b, c), x12, 0xe6db_99e5, 11)
        S.step(&c, d, S.h(d, a, b), x15, 0x1fa2_7cf8, 16); S.step(&b, c, S.h(c, d, a), x2, 0xc4ac_5665, 23)

        S.step(&a, b, S.i(b, c, d), x0, 0xf429_2244, 6); S.step(&d, a, S.i(a, b, c), x7, 0x432a_ff97, 10)
        S.step(&c, d, S.i(d, a, b), x14, 0xab94_23a7, 15); S.step(&b, c, S.i(c, d, a), x5, 0xfc93_a039, 21)
        S.step(&a, b, S.i(b, c, d), x12, 0x655b_59c3, 6); S.step(&d, a, S.i(a, b, c), x3, 0x8f0c_cc92, 10)
        S.step(&c, d, S.i(d, a, b), x10, 0xffef_f47d, 15); S.step(&b, c, S.i(c, d, a), x1, 0x8584_5dd1, 21)
        S.step(&a, b, S.i(b, c, d), x8, 0x6fa8_7e4f, 6); S.step(&d, a, S.i(a, b, c), x15, 0xfe2c_e6e0, 10)
        S.step(&c, d, S.i(d, a, b), x6, 0xa301_4314, 15); S.step(&b, c, S.i(c, d, a), x13, 0x4e08_11a1, 21)
        S.step(&a, b, S.i(b, c, d), x4, 0xf753_7e82, 6); S.step(&d, a, S.i(a, b, c), x11, 0xbd3a_f235, 10)
        S.step(&c, d, S.i(d, a, b), x2, 0x2ad7_d2bb, 15); S.step(&b, c, S.i(c, d, a), x9, 0xeb86_d391, 21)

        self.a &+= a
        self.b &+= b
        self.c &+= c
        self.d &+= d
    }
}

/// Incremental SHA-256 (FIPS 180-4), for hashing large buffers such as model weights without
/// first concatenating them. `finalize()` returns the digest and resets the hasher.
public struct SHA256Hasher: Sendable {
    private var state: [UInt32] = SHA256Hasher.initialState
    private var pending: [UInt8] = []
    private var totalByteCount: UInt64 = 0

    public init() {
        pending.reserveCapacity(64)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var next = bytes.baseAddress, !bytes.isEmpty else { return }
        var remaining = bytes.count
        totalByteCount &+= UInt64(remaining)
        if !pending.isEmpty {
            let taken = min(64 - pending.count, remaining)
            pending.append(contentsOf: UnsafeRawBufferPointer(start: next, count: taken))
            next += taken
            remaining -= taken
            guard pending.count == 64 else { return }
            pending.withUnsafeBytes { compress($0.baseAddress!) }
            pending.removeAll(keepingCapacity: true)
        }
        while remaining >= 64 {
            compress(next)
            next += 64
            remaining -= 64
        }
        if remaining > 0 {
            pending.append(contentsOf: UnsafeRawBufferPointer(start: next, count: remaining))
        }
    }

    public mutating func finalize() -> [UInt8] {
        let bitCount = totalByteCount &* 8
        var tail = pending
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) {
            tail.append(UInt8(truncatingIfNeeded: bitCount >> UInt64(shift)))
        }
        tail.withUnsafeBytes { tailBytes in
            for offset in stride(from: 0, to: tailBytes.count, by: 64) { compress(tailBytes.baseAddress! + offset) }
        }
        let digest = state.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> UInt32(24 - 8 * $0)) } }
        self = SHA256Hasher()
        return digest
    }

    private static let initialState: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]

    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    private mutating func compress(_ block: UnsafeRawPointer) {
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x &>> n | x &<< (32 - n) }
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            for t in 0..<16 {
                w[t] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self))
            }
            for t in 16..<64 {
                let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var a = state[0], b = state[1], c = state[2], d = state[3]
            var e = state[4], f = state[5], g = state[6], h = state[7]
            SHA256Hasher.roundConstants.withUnsafeBufferPointer { k in
                for t in 0..<64 {
                    let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let choice = (e & f) ^ (~e & g)
                    let t1 = h &+ s1 &+ choice &+ k[t] &+ w[t]
                    let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let majority = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = s0 &+ majority
                    h = g; g = f; f = e; e = d &+ t1
                    d = c; c = b; b = a; a = t1 &+ t2
                }
            }
            state[0] &+= a; state[1] &+= b; state[2] &+= c; state[3] &+= d
            state[4] &+= e; state[5] &+= f; state[6] &+= g; state[7] &+= h
        }
    }
}
