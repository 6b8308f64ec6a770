{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/names.cc",
        "native/bpf-object.cc",
        "native/bpf-fd.cc",
        "native/tc.cc",
        "native/netns.cc",
        "native/sockets.cc",
        "native/probes.cc",
        "native/tls-verify.cc",
        "native/sysctl.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter", "-fexceptions", "<!@(pkg-config --cflags libbpf)"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "libraries": ["<!@(pkg-config --libs libbpf)", "-lelf", "-lz", "-pthread"]
    }
  ]
}
