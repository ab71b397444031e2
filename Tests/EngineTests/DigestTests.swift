import XCTest
@testable import Engine

/// Expected values are the published RFC 1321 / FIPS 180-2 vectors, plus boundary lengths
/// (around the 56- and 64-byte padding edges) taken from Python's hashlib.
final class DigestTests: XCTestCase {
    private func md5Hex(_ text: String) -> String { Digest.hex(Digest.md5(Array(text.utf8))) }
    private func sha256Hex(_ text: String) -> String { Digest.hex(Digest.sha256(Array(text.utf8))) }
    /// Bytes 0, 1, 2, … modulo 251: no repeating 64-byte pattern that could hide a block bug.
    private func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8($0 % 251) } }

    func testMD5RFC1321Vectors() {
        XCTAssertEqual(md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(md5Hex("a"), "0cc175b9c0f1b6a831c399e269772661")
        XCTAssertEqual(md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72")
        XCTAssertEqual(md5Hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0")
        XCTAssertEqual(md5Hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b")
        XCTAssertEqual(md5Hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
                       "d174ab98d277d9f5a5611c2c9f419d9f")
        XCTAssertEqual(md5Hex(String(repeating: "1234567890", count: 8)), "57edf4a22be3c955ac49da2e2107b67a")
        XCTAssertEqual(md5Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "8215ef0796a20bcaaae116d3876c664a")
    }

    func testMD5PaddingBoundaries() {
        let expected = [
            55: "6912ee65fff2d9f9ce2508cddf8bcda0", 56: "51fdd1acda72405dfdfa03fcb85896d7",
            63: "48a6295221902e8e0938f773a7185e72", 64: "b2d3f56bc197fd985d5965079b5e7148",
            65: "8bd7053801c768420faf816fadba971c", 119: "1c772251899a7ff007400b888d6b2042",
            120: "b7ba1efc6022e9ed272f00b8831e26e6", 128: "37eff01866ba3f538421b30b7cbefcac",
        ]
        for (length, digest) in expected {
            XCTAssertEqual(Digest.hex(Digest.md5(pattern(length))), digest, "length \(length)")
        }
    }

    func testSHA256FIPSVectors() {
        XCTAssertEqual(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
                       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    }

    func testSHA256PaddingBoundaries() {
        let expected = [
            55: "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59",
            56: "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562",
            63: "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488",
            64: "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",
            65: "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781",
            119: "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6",
            120: "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c",
            128: "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5",
        ]
        for (length, digest) in expected {
            XCTAssertEqual(Digest.hex(Digest.sha256(pattern(length))), digest, "length \(length)")
        }
    }

    func testSHA256MillionAInUnevenChunks() {
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var hasher = SHA256Hasher()
        var offset = 0
        var chunk = 1
        // Chunk sizes cycle through values that straddle the 64-byte block in every way.
        while offset < million.count {
            let end = min(offset + chunk, million.count)
            million[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
            chunk = chunk % 200 + 37
        }
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        XCTAssertEqual(Digest.hex(hasher.finalize()), expected)
        // finalize() resets, so the same hasher starts over from empty.
        hasher.update([UInt8]())
        XCTAssertEqual(Digest.hex(hasher.finalize()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(Digest.hex(Digest.sha256(million)), expected)
    }

    func testHexIsLowercaseTwoDigitsPerByte() {
        XCTAssertEqual(Digest.hex([0x00, 0x0f, 0xa0, 0xff]), "000fa0ff")
        XCTAssertEqual(Digest.hex([]), "")
    }
}
