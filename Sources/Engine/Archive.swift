import CZlib

/// A small versioned binary container for parameters, optimiser moments and other state:
/// magic, format version, named sections, and a CRC-32 of everything before it, so a torn or
/// corrupted file is detected rather than loaded.
public struct Archive: Sendable, Equatable {
    public static let magic: [UInt8] = Array("CTNA".utf8)
    public static let formatVersion: UInt32 = 1

    public private(set) var sections: [String: [UInt8]] = [:]
    private var order: [String] = []

    public init() {}

    public mutating func set(_ name: String, bytes: [UInt8]) {
        if sections[name] == nil { order.append(name) }
        sections[name] = bytes
    }

    public mutating func set(_ name: String, floats: [Float]) {
        var bytes = [UInt8](); bytes.reserveCapacity(floats.count * 4)
        for f in floats { appendLittleEndian(f.bitPattern, to: &bytes) }
        set(name, bytes: bytes)
    }

    public mutating func set(_ name: String, words: [UInt64]) {
        var bytes = [UInt8](); bytes.reserveCapacity(words.count * 8)
        for w in words { appendLittleEndian(w, to: &bytes) }
        set(name, bytes: bytes)
    }

    public func has(_ name: String) -> Bool { sections[name] != nil }

    public func bytes(_ name: String) throws(EngineError) -> [UInt8] {
        guard let b = sections[name] else { throw .corrupt("archive has no section '\(name)'") }
        return b
    }

    public func floats(_ name: String) throws(EngineError) -> [Float] {
        let b = try bytes(name)
        guard b.count % 4 == 0 else { throw .corrupt("section '\(name)' is not a float array") }
        return stride(from: 0, to: b.count, by: 4).map { Float(bitPattern: readLittleEndian(b, at: $0, as: UInt32.self)) }
    }

    public func words(_ name: String) throws(EngineError) -> [UInt64] {
        let b = try bytes(name)
        guard b.count % 8 == 0 else { throw .corrupt("section '\(name)' is not a word array") }
        return stride(from: 0, to: b.count, by: 8).map { readLittleEndian(b, at: $0, as: UInt64.self) }
    }

    public func encoded() -> [UInt8] {
        var out = Archive.magic
        appendLittleEndian(Archive.formatVersion, to: &out)
        appendLittleEndian(UInt32(order.count), to: &out)
        for name in order {
            let nameBytes = Array(name.utf8)
            appendLittleEndian(UInt16(nameBytes.count), to: &out)
            out += nameBytes
            let body = sections[name]!
            appendLittleEndian(UInt64(body.count), to: &out)
            out += body
        }
        appendLittleEndian(Archive.crc32(out), to: &out)
        return out
    }

    public init(decoding data: [UInt8]) throws(EngineError) {
        guard data.count >= 16, Array(data[0..<4]) == Archive.magic else { throw .corrupt("not a ctnas archive") }
        let stored = readLittleEndian(data, at: data.count - 4, as: UInt32.self)
        guard Archive.crc32(Array(data[0..<(data.count - 4)])) == stored else {
            throw .corrupt("archive checksum mismatch (truncated or damaged)")
        }
        let version = readLittleEndian(data, at: 4, as: UInt32.self)
        guard version == Archive.formatVersion else {
            throw .unsupportedVersion("archive format \(version), this build reads \(Archive.formatVersion)")
        }
        let count = Int(readLittleEndian(data, at: 8, as: UInt32.self))
        var at = 12
        let end = data.count - 4
        for _ in 0..<count {
            guard end - at >= 2 else { throw .corrupt("archive section header truncated") }
            let nameLength = Int(readLittleEndian(data, at: at, as: UInt16.self)); at += 2
            guard end - at >= nameLength + 8 else { throw .corrupt("archive section header truncated") }
            guard let name = String(validating: data[at..<(at + nameLength)], as: UTF8.self) else {
                throw .corrupt("archive section name is not UTF-8")
            }
            at += nameLength
            let length = readLittleEndian(data, at: at, as: UInt64.self); at += 8
            guard length <= UInt64(end - at) else { throw .corrupt("archive section '\(name)' truncated") }
            set(name, bytes: Array(data[at..<(at + Int(length))]))
            at += Int(length)
        }
        guard at == end else { throw .corrupt("archive has trailing bytes") }
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { b in
            var crc = CZlib.crc32(0, nil, 0)
            var offset = 0
            while offset < b.count {
                let chunk = min(b.count - offset, 1 << 30)
                crc = CZlib.crc32(crc, b.baseAddress! + offset, UInt32(chunk))
                offset += chunk
            }
            return UInt32(truncatingIfNeeded: crc)
        }
    }
}

@inline(__always) func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    var v = value.littleEndian
    withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
}

@inline(__always) func readLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: T.Type) -> T {
    var v: T = 0
    for i in 0..<MemoryLayout<T>.size { v |= T(bytes[offset + i]) << (8 * i) }
    return v
}
