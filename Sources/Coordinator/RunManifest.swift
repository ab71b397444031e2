import Foundation

/// What a run was started with, written to its folder before any work, so `--resume DIR` needs
/// no other option, even when the run was killed before its first checkpoint.
public struct RunManifest: Codable, Sendable, Equatable {
    public static let fileName = "run.json"
    public static let currentFormat = 1

    public var format = RunManifest.currentFormat
    public var command: String
    public var space: String
    public var data: String
    public var options: SearchOptions
    public var checkpointEvery: Int
    public var workers: Int?
    public var listen: String?
    public var minWorkers: Int?
    public var dataset: String?
    public var validationData: String?
    public var keys: String?
    public var insecure: Bool?

    public init(command: String, space: String, data: String, options: SearchOptions, checkpointEvery: Int) {
        self.command = command; self.space = space; self.data = data
        self.options = options; self.checkpointEvery = checkpointEvery
    }

    public func save(in directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: directory.appendingPathComponent(Self.fileName), options: .atomic)
    }

    public static func load(from directory: URL) throws -> RunManifest {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CheckpointError(message: "\(directory.path) has no \(fileName): it is not a ctnas run folder")
        }
        let manifest: RunManifest
        do {
            manifest = try JSONDecoder().decode(RunManifest.self, from: Data(contentsOf: url))
        } catch {
            throw CheckpointError(message: "\(url.path) is not a readable run manifest: \(error)")
        }
        guard manifest.format == currentFormat else {
            throw CheckpointError(message: "\(url.path) has run format \(manifest.format); this build reads \(currentFormat)")
        }
        return manifest
    }
}
