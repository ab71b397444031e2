// CurveZMQ key helpers and ZAP (ZeroMQ RFC 27) request/reply building blocks.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Curve

public enum ZMQCurve {
    /// True if libzmq was built with CURVE support (`zmq_has("curve")`).
    public static var isAvailable: Bool { ZMQSys.has("curve") }

    /// A fresh CURVE key pair, both Z85-encoded (40 characters).
    public static func keyPair() throws -> (publicKey: String, secretKey: String) {
        try ZMQSys.curveKeypair()
    }

    /// The Z85 public key belonging to a Z85 secret key (`zmq_curve_public`).
    public static func publicKey(forSecretKey secretKey: String) throws -> String {
        guard secretKey.utf8.count == 40 else { throw ZMQError(call: "zmq_curve_public", errno: EINVAL) }
        return try ZMQSys.curvePublic(secretKey: secretKey)
    }

    /// Z85-encodes bytes (count must be a multiple of 4; a 32-byte key gives 40 characters).
    public static func z85Encode(_ bytes: [UInt8]) throws -> String {
        try ZMQSys.z85Encode(bytes)
    }

    /// Decodes Z85 text (length must be a multiple of 5). Throws on invalid input.
    public static func z85Decode(_ text: String) throws -> [UInt8] {
        try ZMQSys.z85Decode(text)
    }
}

// MARK: - ZAP

/// A ZAP authentication request (RFC 27), as received by a REP socket bound at `ZAPRequest.endpoint`
/// in the same context as the authenticating socket (the REP socket strips the envelope).
public struct ZAPRequest: Sendable, Equatable {
    /// The well-known inproc endpoint the ZAP handler must bind.
    public static let endpoint = "inproc://zeromq.zap.01"

    public let version: String
    public let requestId: [UInt8]
    public let domain: String
    /// The peer's IP address.
    public let address: String
    /// The connecting socket's routing id (may be empty).
    public let identity: [UInt8]
    /// "NULL", "PLAIN" or "CURVE".
    public let mechanism: String
    /// NULL: none; PLAIN: [username, password]; CURVE: [32-byte client public key].
    public let credentials: [[UInt8]]

    /// Parses the request frames; nil if malformed (wrong version, too few frames,
    /// or credentials not matching the mechanism).
    public init?(frames: [[UInt8]]) {
        guard frames.count >= 6 else { return nil }
        let version = String(decoding: frames[0], as: UTF8.self)
        guard version == "1.0" else { return nil }
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        let credentials = Array(frames[6...])
        switch mechanism {
        case "NULL": guard credentials.isEmpty else { return nil }
        case "PLAIN": guard credentials.count == 2 else { return nil }
        case "CURVE": guard credentials.count == 1, credentials[0].count == 32 else { return nil }
        default: return nil
        }
        self.version = version
        self.requestId = frames[1]
        self.domain = String(decoding: frames[2], as: UTF8.self)
        self.address = String(decoding: frames[3], as: UTF8.self)
        self.identity = frames[4]
        self.mechanism = mechanism
        self.credentials = credentials
    }

    /// For CURVE requests: the client's public key (32 raw bytes).
    public var curvePublicKey: [UInt8]? {
        mechanism == "CURVE" ? credentials.first : nil
    }

    /// For CURVE requests: the client's public key, Z85-encoded (40 characters).
    public var curvePublicKeyZ85: String? {
        curvePublicKey.flatMap { try? ZMQCurve.z85Encode($0) }
    }

    /// The reply frames to send on the REP socket: version, request id, status code
    /// ("200" allow, "300" temporary error, "400" deny, "500" internal error), status text,
    /// user id, metadata (empty, or ZMTP-encoded properties).
    public func reply(statusCode: String, statusText: String, userId: String, metadata: [UInt8] = []) -> [[UInt8]] {
        [Array("1.0".utf8), requestId, Array(statusCode.utf8), Array(statusText.utf8), Array(userId.utf8), metadata]
    }
}
