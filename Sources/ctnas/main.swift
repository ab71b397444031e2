import Foundation
import Engine

nonisolated(unsafe) let commands: [(spec: CommandSpec, run: (ParsedArguments) throws -> Int32)] = [
    (CheckData.spec, CheckData.run),
    (TrainComparator.spec, TrainComparator.run),
    (SearchCommands.searchSpec, SearchCommands.runSearch),
    (SearchCommands.coordinatorSpec, SearchCommands.runCoordinator),
    (SearchCommands.workerSpec, SearchCommands.runWorker),
    (Rank.spec, Rank.run),
    (Keys.spec, Keys.run),
    (Report.spec, Report.run),
    (Status.spec, Status.run),
    (Bench.spec, Bench.run),
]

func topLevelHelp() -> String {
    var lines = ["ctnas — contrastive neural architecture search (CTNAS) on a ZeroMQ worker cluster", "",
                 "usage: ctnas <command> [options]", "", "commands:"]
    let width = commands.map { $0.spec.name.count }.max() ?? 0
    for c in commands { lines.append("  " + c.spec.name + String(repeating: " ", count: width - c.spec.name.count + 2) + c.spec.summary) }
    lines += ["", "Run 'ctnas <command> --help' for a command's options and their defaults."]
    return lines.joined(separator: "\n")
}

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("ctnas: \(message)\n".utf8))
    exit(status)
}

KernelPinning.pinOrReexecute()
let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first else {
    print(topLevelHelp())
    exit(2)
}
if name == "--help" || name == "-h" || name == "help" {
    print(topLevelHelp())
    exit(0)
}
guard let command = commands.first(where: { $0.spec.name == name }) else {
    fail("unknown command '\(name)' (see ctnas --help)", status: 2)
}
do {
    let parsed = try ParsedArguments(command.spec, Keys.normalize(command.spec, Array(arguments.dropFirst())))
    if parsed.has("--help") {
        print(command.spec.help)
        exit(0)
    }
    exit(try command.run(parsed))
} catch let error as UsageError {
    fail(error.message, status: 2)
} catch {
    fail("\(error)", status: 1)
}
