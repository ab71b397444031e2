// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ctnas",
    products: [
        .executable(name: "ctnas", targets: ["ctnas"]),
    ],
    targets: [
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ", pkgConfig: "libzmq",
                       providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Engine", dependencies: ["COpenBLAS", "CZlib"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "Protocol", dependencies: ["Engine", "CZeroMQ"]),
        .target(name: "Coordinator", dependencies: ["Engine", "Protocol"]),
        .target(name: "Worker", dependencies: ["Engine", "Protocol"]),
        .executableTarget(name: "ctnas", dependencies: ["Engine", "Protocol", "Coordinator", "Worker"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine"]),
        .testTarget(name: "ProtocolTests", dependencies: ["Protocol", "Engine"]),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Engine", "Protocol"]),
        .testTarget(name: "ClusterTests", dependencies: ["Coordinator", "Worker", "Engine", "Protocol"]),
    ],
    swiftLanguageModes: [.v6]
)
