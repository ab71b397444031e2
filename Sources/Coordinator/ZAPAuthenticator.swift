import Foundation
import Protocol

/// The ZAP handler (ZeroMQ RFC 27) of one context: a thread owning a REP socket bound at
/// `ZAPRequest.endpoint`, admitting CURVE clients whose public key is in the allow-list and
/// refusing everything else (other mechanisms, other ZAP domains, malformed requests).
///
/// Create it before binding the CURVE server socket, in the same context, and stop it only after
/// that socket is closed: while no handler is bound, libzmq lets every CURVE client in.
/// One per context (the endpoint is unique). The allow-list can be replaced at any time.
public final class ZAPAuthenticator: @unchecked Sendable {
    public struct Refusal: Sendable, Equatable, CustomStringConvertible {
        /// The peer's IP address as libzmq reports it.
        public let address: String
        /// The client's Z85 public key, for CURVE requests.
        public let publicKey: String?
        public let reason: String

        public var description: String { "refused \(address): \(reason)" }
    }

    private let state: State

    /// Binds `ZAPRequest.endpoint` in `context` and starts answering; returns once bound.
    /// `domain`: when set, requests for another ZAP domain are refused.
    /// `onRefusal` runs on the handler's thread and must not block.
    /// `onFailure` runs on that thread if the handler dies (the context was shut down, or a libzmq
    /// error): from then on nothing authenticates the context's CURVE servers, so close them.
    public init(context: ZMQContext, authorizedKeys: Set<String>, domain: String? = nil,
                onRefusal: (@Sendable (Refusal) -> Void)? = nil,
                onFailure: (@Sendable (String) -> Void)? = nil) throws {
        let wakeEndpoint = "inproc://ctnas-zap-wake-\(UInt64.random(in: .min ... .max))"
        let zap = try ZMQSocket(context: context, kind: .rep)
        try zap.set(.lingerMs(0))
        do {
            try zap.bind(ZAPRequest.endpoint)
        } catch let error as ZMQError where error.errno == EADDRINUSE {
            throw RunnerError("another ZAP handler is already bound in this ZeroMQ context")
        }
        let wake = try ZMQSocket(context: context, kind: .pair)
        try wake.set(.lingerMs(0))
        try wake.bind(wakeEndpoint)
        let waker = try ZMQSocket(context: context, kind: .pair)
        try waker.set(.lingerMs(0))
        try waker.connect(wakeEndpoint)
        state = State(keys: authorizedKeys, waker: waker)
        // The sockets move to the handler thread; Thread.start is the memory barrier ZeroMQ needs.
        let handler = Handler(state: state, zap: zap, wake: wake, domain: domain, onRefusal: onRefusal, onFailure: onFailure)
        let thread = Thread { handler.run() }
        thread.name = "ctnas-zap"
        thread.start()
    }

    deinit {
        stop()
    }

    /// Replaces the allow-list. New handshakes use it at once; connections already admitted stay.
    public func reload(authorizedKeys: Set<String>) {
        state.lock.withLock { state.keys = authorizedKeys }
    }

    public var authorizedKeys: Set<String> { state.lock.withLock { state.keys } }

    /// Handshakes answered so far.
    public var counts: (allowed: Int, refused: Int) { state.lock.withLock { (state.allowed, state.refused) } }

    /// Stops the thread and closes its sockets; returns once they are closed. Idempotent.
    public func stop() {
        state.stop()
    }

    /// What the caller side and the handler thread share, under `lock`.
    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var keys: Set<String>
        var allowed = 0
        var refused = 0
        private var stopped = false
        private var running = true
        private var waker: ZMQSocket?
        private let done = DispatchSemaphore(value: 0)

        init(keys: Set<String>, waker: ZMQSocket) {
            self.keys = keys
            self.waker = waker
        }

        var stopRequested: Bool { lock.withLock { stopped } }

        func stop() {
            let wait: Bool = lock.withLock {
                if !stopped { _ = try? waker?.send([[]], dontWait: true) }
                stopped = true
                return running
            }
            if wait {
                done.wait()
                done.signal()
            }
            lock.withLock {
                waker?.close()
                waker = nil
            }
        }

        func decide(_ key: String?) -> Bool {
            lock.withLock {
                let ok = key.map { keys.contains($0) } ?? false
                if ok { allowed += 1 } else { refused += 1 }
                return ok
            }
        }

        func countRefusal() {
            lock.withLock { refused += 1 }
        }

        func finished() {
            lock.withLock { running = false }
            done.signal()
        }
    }

    /// The handler thread's sockets and callbacks.
    private final class Handler: @unchecked Sendable {
        let state: State
        let zap: ZMQSocket
        let wake: ZMQSocket
        let domain: String?
        let onRefusal: (@Sendable (Refusal) -> Void)?
        let onFailure: (@Sendable (String) -> Void)?

        init(state: State, zap: ZMQSocket, wake: ZMQSocket, domain: String?,
             onRefusal: (@Sendable (Refusal) -> Void)?, onFailure: (@Sendable (String) -> Void)?) {
            self.state = state
            self.zap = zap
            self.wake = wake
            self.domain = domain
            self.onRefusal = onRefusal
            self.onFailure = onFailure
        }

        func run() {
            do {
                try loop()
            } catch {
                if !state.stopRequested { onFailure?("ZAP handler failed: \(error)") }
            }
            zap.close()
            wake.close()
            state.finished()
        }

        private func loop() throws {
            var poller = ZMQPoller()
            poller.add(zap)
            poller.add(wake)
            while true {
                let ready = try poller.poll(timeoutMs: -1)
                if ready[1].contains(.pollIn) || state.stopRequested { return }
                guard ready[0].contains(.pollIn) else { continue }
                // A REP socket alternates strictly: every request gets exactly one reply.
                for _ in 0..<100 {
                    guard let frames = try zap.receive(dontWait: true) else { break }
                    try zap.send(answer(frames))
                }
            }
        }

        private func answer(_ frames: [[UInt8]]) -> [[UInt8]] {
            guard let request = ZAPRequest(frames: frames) else {
                state.countRefusal()
                onRefusal?(Refusal(address: "?", publicKey: nil, reason: "malformed ZAP request"))
                let requestId = frames.count > 1 ? frames[1] : []
                return [Array("1.0".utf8), requestId, Array("500".utf8), Array("malformed request".utf8), [], []]
            }
            func refuse(_ reason: String, key: String? = nil) -> [[UInt8]] {
                onRefusal?(Refusal(address: request.address, publicKey: key, reason: reason))
                return request.reply(statusCode: "400", statusText: reason, userId: "")
            }
            if let domain, request.domain != domain {
                state.countRefusal()
                return refuse("ZAP domain '\(request.domain)' is not '\(domain)'")
            }
            guard request.mechanism == "CURVE", let key = request.curvePublicKeyZ85 else {
                state.countRefusal()
                return refuse("\(request.mechanism) mechanism not allowed, CURVE required")
            }
            guard state.decide(key) else {
                return refuse("CURVE key \(key) is not in the authorized workers", key: key)
            }
            return request.reply(statusCode: "200", statusText: "OK", userId: key)
        }
    }
}
