import Foundation
import Engine
import Protocol
import Coordinator
import Worker

/// The coordinator side of a cluster as commands use it: a ClusterRunner bound where asked,
/// plus worker threads in this process when wanted.
final class ClusterSetup {
    let runner: ClusterRunner
    private var nodes: [WorkerNode] = []

    private var hangup: DispatchSourceSignal?

    /// `keys`/`insecure` as the user gave them: the listen rule and CurveZMQ are applied here.
    init(space: any SearchSpace, listen: String?, localWorkers: Int, keys: String? = nil, insecure: Bool = false,
         onEvent: @escaping @Sendable (ClusterEvent) -> Void) throws {
        remote = listen.map { !$0.lowercased().hasPrefix("inproc://") } ?? false
        let (security, localSecurity) = try Keys.coordinatorSecurity(keys: keys, insecure: insecure, listen: listen, localWorkers: localWorkers)
        let context = try ZMQContext()
        let bind = listen ?? "inproc://ctnas-\(getpid())"
        var configuration = ClusterRunner.Configuration(engineVersion: JobExecutor.engineVersion, security: security)
        configuration.space = space.name
        runner = try ClusterRunner(bind: bind, configuration: configuration, context: context, onEvent: onEvent)
        hangup = Keys.reloadOnHangup(runner, security: security)
        // Local workers reach a tcp endpoint through loopback; inproc shares the context.
        let local = listen.map { $0.replacingOccurrences(of: "://*:", with: "://127.0.0.1:").replacingOccurrences(of: "://0.0.0.0:", with: "://127.0.0.1:") } ?? bind
        for k in 0..<localWorkers {
            let node = WorkerNode(endpoint: local, executor: JobExecutor(space: space), threads: 1, workerId: "local-\(k)",
                                  context: context, security: localSecurity)
            nodes.append(node)
            let thread = Thread { try? node.run() }
            thread.name = "ctnas-worker-\(k)"
            thread.start()
        }
    }

    private var remote: Bool
    private var stopped = false

    /// Stands the workers down. Remote workers get their standby from ZeroMQ's I/O thread after
    /// the socket closes (linger); the process must live that long or the frame is lost.
    func shutdown() {
        guard !stopped else { return }
        stopped = true
        hangup?.cancel()
        runner.shutdown()
        nodes.forEach { $0.stop() }
        if remote { Thread.sleep(forTimeInterval: 0.5) }
    }

    deinit { shutdown() }
}
