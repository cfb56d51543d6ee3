package conduit.opensearch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.opensearch.common.settings.Settings;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single OpenSearch node on 127.0.0.1, for the local stack and the search adapter's tests.
 *
 * <p>Usage: {@code LocalNode <home dir> <http port, 0 for a free one>}. Data lives under
 * {@code <home>/data} (kept across runs when the home is). Prints
 * {@code conduit-opensearch listening on http://127.0.0.1:<port>} once it serves requests, then
 * runs until it is signalled (SIGTERM closes the node cleanly). Whoever starts it makes it die
 * with them (local-aws asks the kernel for that).
 */
public final class LocalNode {
    /** The plugins a distribution would load from modules/: only HTTP over netty is needed. */
    private static final Collection<Class<? extends Plugin>> PLUGINS = List.of(Netty4Plugin.class);

    /** A node with the plugin classes on the classpath, as the distribution's modules. */
    private static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment) {
            super(environment, PLUGINS, true);
        }
    }

    private LocalNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: LocalNode <home dir> <http port, 0 for a free one>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        Files.createDirectories(home.resolve("config"));
        Settings settings = Settings.builder()
                .put("cluster.name", "conduit-local")
                .put("node.name", "conduit-local")
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("discovery.type", "single-node")
                .put("network.host", "127.0.0.1")
                .put("http.port", port)
                // The transport layer is unused by a single node; any free port.
                .put("transport.port", 0)
                .put("http.type", "netty4")
                .put("transport.type", "netty4")
                // A developer's disk may be fuller than the watermarks a cluster allows.
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .build();
        Environment environment =
                InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "conduit-local");
        Node node = new ClasspathNode(environment);
        node.start();
        TransportAddress bound =
                node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        System.out.println("conduit-opensearch listening on http://127.0.0.1:" + bound.getPort());
        System.out.flush();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> close(node)));
        // The node's own threads are daemons: keep the JVM up until it is signalled.
        new CountDownLatch(1).await();
    }

    private static void close(Node node) {
        try {
            node.close();
        } catch (IOException e) {
            System.err.println("closing the node: " + e);
        }
    }
}
