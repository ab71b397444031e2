/// Where the search sends its work. The search never knows whether jobs run on threads in this
/// process or on machines across a network; it publishes weights and hands over job lists.
public protocol JobRunner: AnyObject {
    /// Makes `weights` available to whoever runs jobs naming that version.
    func publish(_ weights: Weights) throws
    /// Runs every job and returns the results in job order, whoever computed them.
    func run(_ jobs: [JobPayload]) throws -> [ResultPayload]
}

public struct RunnerError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
